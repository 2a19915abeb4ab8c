"""The portal's login page and the API's token endpoint, both behind the login throttle."""

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from . import login_throttle


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = login_throttle.client_address(self.request)
        try:
            login_throttle.check(username, address)
        except login_throttle.TooManyFailures as refusal:
            raise forms.ValidationError(refusal.message, code="throttled") from None
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_throttle.record_failure(username, address)
            raise
        login_throttle.record_success(username, address)
        return cleaned


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "login.html"

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if any(error.code == "throttled" for error in form.non_field_errors().as_data()):
            response.status_code = 429
        return response


class ObtainTokenView(ObtainAuthToken):
    """POST username and password -> {"token": ...}; refused with 429 after repeated failures."""

    def post(self, request, *args, **kwargs):
        username = str(request.data.get("username") or "")
        address = login_throttle.client_address(request)
        try:
            login_throttle.check(username, address)
        except login_throttle.TooManyFailures as refusal:
            return Response({"error": refusal.message}, status=429)
        serializer = self.get_serializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            login_throttle.record_failure(username, address)
            serializer.is_valid(raise_exception=True)
        login_throttle.record_success(username, address)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
