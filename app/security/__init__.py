"""What keeps the application safe to run: response headers, the secret key, instance file
permissions, rate limits and the audit log."""
