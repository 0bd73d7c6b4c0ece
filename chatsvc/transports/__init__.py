"""Ways into the chat other than the framed TCP protocol (WebSocket, IRC)."""
