"""The embedded world: emulators that answer where configuration points, on loopback only."""
