"""The shell: the commands, the demo, the scheduler and the erasure that walks every stage; the only layer that wires stages together."""
