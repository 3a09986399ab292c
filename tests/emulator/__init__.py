"""The provider emulator (streamwrap.testing) and its dialects."""
