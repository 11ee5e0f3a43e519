"""`python -m tokenyard` runs the CLI."""

from tokenyard.cli import main

if __name__ == "__main__":
    main()
