from ae_lab.cli import main

main()
