// A real OpenID provider for the interop tests: client-credentials grant issuing
// RS256 JWT access tokens for the audience "custody", discovery and JWKS served by
// oidc-provider itself. Usage: node server.mjs PORT  (prints "listening <issuer>").
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'agent-service',
    client_secret: 'agent-service-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
  scopes: ['tool:crm:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:custody',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'tool:crm:read',
        audience: 'custody',
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
