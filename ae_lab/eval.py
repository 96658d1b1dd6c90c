"""``python -m ae_lab.eval ckpt_path=...``: the ``ae-lab-eval`` command (ae_lab/run/evaluate.py)."""

from ae_lab.run.cli import check_python


def main() -> None:
    check_python()  # before anything imports Hydra
    from ae_lab.run import process

    process.setup()
    from ae_lab.run.evaluate import main as evaluate

    evaluate()


if __name__ == "__main__":
    main()
