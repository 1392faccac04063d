"""`python -m seqgen ...` (and `accelerate launch -m seqgen train ...`)."""

from seqgen.cli import main

if __name__ == "__main__":
    main()
