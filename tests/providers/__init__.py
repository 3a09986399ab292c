"""One module per provider's wrapper (and its model sources), against the emulator."""
