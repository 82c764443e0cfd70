"""Who may do what: staff users and roles, API keys, portal links."""
