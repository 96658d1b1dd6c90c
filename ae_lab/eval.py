"""``python -m ae_lab.eval ckpt_path=...``: the ``ae-lab-eval`` command (ae_lab/run/evaluate.py)."""

from ae_lab.run.evaluate import main

if __name__ == "__main__":
    main()
