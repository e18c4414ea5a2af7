"""Login, refresh and logout: passwords, refresh tokens and the flows that use them."""
