"""The admin's geometry widget under the Content-Security-Policy (gridsvc.web.csp).

Django's GIS admin widget loads OpenLayers from a CDN, draws an OpenStreetMap base layer and
starts itself with an inline script: all three are refused by the CSP (and the CDN and OSM are
out of reach on a street office's intranet). :class:`LocalMapWidget` serves OpenLayers from the
project's own npm bundle (scripts/build_web.sh), draws no internet base map (vertices are
edited over the object's own outline) and is started by a static script (web/olwidget.js)
reading its options from ``data-`` attributes.
"""

from __future__ import annotations

from typing import Any

from django.contrib.gis import admin
from django.contrib.gis.forms.widgets import OpenLayersWidget

#: Where a new object's map opens (WGS84 lon, lat, zoom): the demo street, as on the web page.
DEFAULT_CENTER = (103.775, 36.059, 14)


class LocalMapWidget(OpenLayersWidget):
    """OpenLayers from our own static files; no inline script, no internet base map."""

    template_name = "web/openlayers.html"

    class Media:
        extend = False  # not the parent's CDN files
        css = {"all": ("web/vendor/ol/ol.css", "gis/css/ol3.css")}
        js = ("web/vendor/ol/ol.js", "gis/js/OLMapWidget.js", "web/olwidget.js")

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        lon, lat, zoom = DEFAULT_CENTER
        self.attrs.setdefault("default_lon", lon)
        self.attrs.setdefault("default_lat", lat)
        self.attrs.setdefault("default_zoom", zoom)


class GISModelAdmin(admin.GISModelAdmin):
    """``django.contrib.gis.admin.GISModelAdmin`` with :class:`LocalMapWidget`."""

    gis_widget = LocalMapWidget
