"""The web shell shared by every face: middleware, template filters, logging."""
