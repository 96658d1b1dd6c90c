from ae_lab.run.cli import main

main()
