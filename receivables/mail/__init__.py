"""Mail: the outbox (the communication history) and the SMTP sender."""
