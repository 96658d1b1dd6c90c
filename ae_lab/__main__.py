from ae_lab.train import main

main()
