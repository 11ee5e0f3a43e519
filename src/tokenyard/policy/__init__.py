"""Pure decision policies: no I/O, time passed in, unit-tested in isolation."""
