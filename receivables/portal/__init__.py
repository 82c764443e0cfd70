"""The customer portal's domain: visits opened from a signed link, answers per invoice."""
