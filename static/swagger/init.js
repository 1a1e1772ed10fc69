// Starts Swagger UI on /doc. A separate file (not an inline script) so a strict
// Content-Security-Policy without 'unsafe-inline' scripts can still serve the page.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null
  });
});
