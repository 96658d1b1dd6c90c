"""``python -m ae_lab``: the ``ae-lab`` command (ae_lab/run/cli.py)."""

from ae_lab.run.cli import main

if __name__ == "__main__":
    main()
