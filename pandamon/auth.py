"""API token authentication.

Scripts and the CLI send `Authorization: Bearer <token>` (the form the PanDA client
uses for OIDC tokens); DRF's own `Token <token>` form is accepted too.
"""

from rest_framework.authentication import TokenAuthentication, get_authorization_header


class BearerTokenAuthentication(TokenAuthentication):
    keywords = (b"bearer", b"token")

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            from rest_framework.exceptions import AuthenticationFailed

            raise AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        return self.authenticate_credentials(parts[1].decode(errors="replace"))

    def authenticate_header(self, request):
        return "Bearer"
