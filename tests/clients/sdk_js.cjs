// Unchanged AWS SDK for JavaScript v3 code reading through secretcache: the only change is the environment,
// AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_SSM, which the SDK reads itself. The SDK comes from
// NODE_SDK_DIR (`make node-sdk`). Reads SECRET_NAME and PARAMETER_NAME (a SecureString); prints one JSON object of what
// it saw, exceptions by their name.
const { createRequire } = require("node:module");
const sdk = createRequire(`${process.env.NODE_SDK_DIR}/package.json`);
const sm = sdk("@aws-sdk/client-secrets-manager");
const ssm = sdk("@aws-sdk/client-ssm");

async function attempt(promise) {
  try {
    return { ok: await promise };
  } catch (error) {
    return { error: error.name };
  }
}

async function main() {
  const secrets = new sm.SecretsManagerClient({});
  const parameters = new ssm.SSMClient({});
  const name = process.env.SECRET_NAME;
  const parameter = process.env.PARAMETER_NAME;
  const reads = [];
  for (let i = 0; i < 5; i++) {
    const out = await secrets.send(new sm.GetSecretValueCommand({ SecretId: name }));
    reads.push(out.SecretString);
  }
  const dated = await secrets.send(new sm.GetSecretValueCommand({ SecretId: name }));
  const missing = await attempt(secrets.send(new sm.GetSecretValueCommand({ SecretId: `${name}-missing` })));
  const param = await parameters.send(new ssm.GetParameterCommand({ Name: parameter, WithDecryption: true }));
  const paramMissing = await attempt(parameters.send(new ssm.GetParameterCommand({ Name: `${parameter}-missing` })));
  console.log(
    JSON.stringify({
      reads,
      createdIsADate: dated.CreatedDate instanceof Date && !Number.isNaN(dated.CreatedDate.getTime()),
      missing: missing.error,
      parameter: param.Parameter.Value,
      parameterMissing: paramMissing.error,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
