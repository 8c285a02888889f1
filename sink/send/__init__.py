"""Send: transport, auth, pacing, classification, the dispatcher, the ledger, the send core."""
