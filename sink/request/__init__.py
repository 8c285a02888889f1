"""Request: the endpoint templates, value preparation, rendering, batching and Docker's spec."""
