"""The daemon's local API: HTTP/1.1 + JSON over a Unix socket only its owner can use."""
