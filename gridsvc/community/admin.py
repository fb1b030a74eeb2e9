from django.contrib import admin

from .models import LOCATED

for _model in LOCATED:
    admin.site.register(_model)
