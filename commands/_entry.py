"""``python -m usdposer.commands._entry`` runs the CLI (the console script calls the same ``main``)."""

from usdposer.commands import main

if __name__ == "__main__":
    main()
