"""The Skeet app shell: configuration, state, layout and the wiring of services into state."""
