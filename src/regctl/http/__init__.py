"""HTTP to the Config Service: the calls (api), the one client configuration (config), bounded reads (bounded)."""
