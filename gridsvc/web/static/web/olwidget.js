/* Start the admin's geometry widgets (gridsvc.web.widgets.LocalMapWidget) from their data-
   attributes: Django's own template does this with an inline script, which the CSP refuses.
   No internet base map: an empty layer under the object's outline. */
"use strict";
(function () {
  function start() {
    document.querySelectorAll(".dj_map_wrapper[data-olwidget]").forEach(function (div) {
      if (div.dataset.started) return;
      div.dataset.started = "1";
      var d = div.dataset;
      var widget = new MapWidget({
        base_layer: new ol.layer.Vector({ source: new ol.source.Vector() }),
        geom_name: d.geomName,
        id: d.id,
        map_id: d.id + "_map",
        map_srid: Number(d.mapSrid),
        name: d.name,
        default_lon: Number(d.defaultLon),
        default_lat: Number(d.defaultLat),
        default_zoom: Number(d.defaultZoom),
      });
      if (d.module) window[d.module] = widget;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
