"""``python -m robustad`` runs the CLI."""

from robustad.cli import main

main()
