"""``python -m producer.cli`` is the same as the ``echodiary`` command."""

from producer.cli import main

main()
