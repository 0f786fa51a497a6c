"""Who may change the stock: signed, expiring tokens."""
