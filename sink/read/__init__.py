"""Read: the read client, exports, health checks, stored connections and credentials."""
