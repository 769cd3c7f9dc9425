"""``python -m vgem.cli``: the ``vgem`` command."""

from vgem.cli import main

if __name__ == "__main__":
    main()
