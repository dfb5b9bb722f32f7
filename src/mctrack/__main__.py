"""``python -m mctrack`` = the ``mctrack`` command."""
from .cli import main

main()
