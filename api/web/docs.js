// Renders /api/v1/openapi.json with the locally served Swagger UI.
'use strict';

window.addEventListener('DOMContentLoaded', () => {
  const target = document.getElementById('reference');
  if (typeof window.SwaggerUIBundle !== 'function') {
    target.textContent = 'Swagger UI is not installed on this server (run scripts/setup.sh). ' +
      'The document itself is at /api/v1/openapi.json.';
    return;
  }
  window.SwaggerUIBundle({
    url: '/api/v1/openapi.json',
    domNode: target,
    deepLinking: true,
    // The default validator badge would ask validator.swagger.io about the document.
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
