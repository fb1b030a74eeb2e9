"""drf-spectacular extensions: describe our authentication classes in the OpenAPI schema."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class DeviceJWTScheme(SimpleJWTScheme):
    target_class = "gridsvc.accounts.authentication.DeviceJWTAuthentication"
    name = "jwtAuth"
