// Checks an OpenAPI document against the specification (its JSON schema and reference rules).
// Usage: node validate-openapi.mjs FILE; exits 1 with the reasons when it is not valid.
import SwaggerParser from '@apidevtools/swagger-parser';

const file = process.argv[2];
try {
  const api = await SwaggerParser.validate(file);
  console.log(`valid: OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths`);
} catch (err) {
  console.error(`invalid: ${err.message}`);
  process.exit(1);
}
