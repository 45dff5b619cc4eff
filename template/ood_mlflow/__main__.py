"""`python3 -m ood_mlflow preflight|serve|ready PID|clean`: the job's steps (and serve's slurm-lookup helper)."""

import sys


def main(argv) -> int:
    command = argv[0] if argv else ""
    if command == "preflight":
        from .preflight import main as run
        return run()
    if command == "serve":
        from .serve import main as run
        return run()
    if command == "slurm-lookup":
        from .slurm.lookup import main as run
        return run()
    if command == "clean":
        from .clean import main as run
        return run()
    if command == "ready":
        from .ready import main as run
        return run(int(argv[1]) if len(argv) > 1 else 0)
    print("usage: python3 -m ood_mlflow preflight|serve|ready [SERVER_PID]|clean", file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
