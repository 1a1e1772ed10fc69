"""Live parties: guests join from their phones and the queue follows who is in the room."""
