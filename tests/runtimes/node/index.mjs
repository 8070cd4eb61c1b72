// A Node.js function that reads through the secretcache layer as the AWS documentation's examples read through the
// AWS Parameters and Secrets Lambda Extension: an HTTP GET to localhost with the session token in the
// X-Aws-Parameters-Secrets-Token header, here with Node's built-in fetch.
//
// It reads a secret and a SecureString parameter once during init (top-level await in an ES module) and again in
// every invoke, and returns what it read so that the test can compare it with what Secrets Manager holds. It never
// prints a value: the test checks that no log line holds one.

const port = process.env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? "2773";
const headers = { "X-Aws-Parameters-Secrets-Token": process.env.AWS_SESSION_TOKEN };

async function get(path) {
  const response = await fetch(`http://localhost:${port}${path}`, { headers });
  if (!response.ok) {
    throw new Error(`GET ${path.split("?")[0]}: HTTP ${response.status}`);
  }
  return response.json();
}

const readSecret = async () =>
  (await get(`/secretsmanager/get?secretId=${encodeURIComponent(process.env.SECRET_ID)}`)).SecretString;

const readParameter = async () =>
  (
    await get(
      `/systemsmanager/parameters/get?name=${encodeURIComponent(process.env.PARAMETER_NAME)}&withDecryption=true`,
    )
  ).Parameter.Value;

const atInit = { secret: await readSecret(), parameter: await readParameter() };
console.log("init read the secret and the parameter");

export const handler = async (event, context) => ({
  init: atInit,
  invoke: { secret: await readSecret(), parameter: await readParameter() },
  requestId: context.awsRequestId,
});
