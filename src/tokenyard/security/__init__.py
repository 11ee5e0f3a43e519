"""Zero trust: API key store, service identities (JWT, mTLS), east-west policy, audit log."""
