"""The stage chain: one callable type for every stage, composed once at start-up (see ``chain``)."""
