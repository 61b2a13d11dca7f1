"""``python -m flywheel`` runs the CLI."""

from flywheel.shell.cli import main

# The guard matters: the ingest worker's helper process is spawned and imports this module.
if __name__ == "__main__":
    main()
