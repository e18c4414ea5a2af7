"""Login drivers beside the local one: LDAP, SAML, and OpenID Connect / OAuth2 (SSO)."""
