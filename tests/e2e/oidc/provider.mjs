// A real, independent OpenID Provider for polycloud's single sign-on tests: panva's oidc-provider
// (a certified implementation), with one public client, people in different groups, the device flow
// and the code flow with PKCE. Started by tests/e2e/oidc/provider.py; prints "ready <issuer>".
//
// Environment: OIDC_JWKS_FILE (private signing keys as a JWKS; the first one signs), OIDC_USERS (JSON:
// login -> {email, groups}), OIDC_CLIENT_ID, OIDC_ID_TOKEN_TTL (seconds), OIDC_PORT (0: any).
// SIGHUP re-reads OIDC_JWKS_FILE and swaps in a provider with the new keys on the same port (key
// rotation without a restart); grants, sessions and refresh tokens live in one in-memory store that
// both providers share, so they survive the swap.
import fs from "node:fs";
import http from "node:http";

import Provider from "oidc-provider";
// The package's own in-memory adapter, over one store that every provider built here shares.
import MemoryAdapter from "oidc-provider/lib/adapters/memory_adapter.js";
import LRU from "oidc-provider/lib/helpers/lru.js";

const shared = new LRU({ maxSize: 1000 });

const users = JSON.parse(process.env.OIDC_USERS);
const clientId = process.env.OIDC_CLIENT_ID || "polycloud";
const idTokenTtl = Number(process.env.OIDC_ID_TOKEN_TTL || 3600);

function build(issuer) {
  const jwks = JSON.parse(fs.readFileSync(process.env.OIDC_JWKS_FILE, "utf8"));
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_name: "polycloud",
        application_type: "native",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        response_types: ["code"],
        // Loopback addresses of a native client match on any port (RFC 8252 §7.3).
        redirect_uris: ["http://127.0.0.1/callback", "http://127.0.0.1/api/v1/auth/oidc/callback"],
      },
    ],
    jwks,
    adapter: (model) => new MemoryAdapter(model, shared),
    claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"], profile: ["name"] },
    conformIdTokenClaims: false, // the scopes' claims go into the ID token, which polycloud reads
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      DeviceCode: 600,
      Grant: 86400,
      IdToken: idTokenTtl,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 86400,
    },
    cookies: { keys: ["polycloud-test-only"] },
    findAccount: async (_ctx, id) =>
      users[id] && {
        accountId: id,
        claims: async () => ({ sub: id, email: users[id].email, email_verified: true, groups: users[id].groups }),
      },
  });
  // RFC 8628 lets the provider name the polling interval; one second keeps the tests quick.
  provider.on("device_authorization.success", (_ctx, body) => {
    body.interval = 1;
  });
  provider.on("server_error", (_ctx, err) => console.error("server_error", err));
  return provider.callback();
}

let handle = null;
const server = http.createServer((req, res) => handle(req, res));
server.listen(Number(process.env.OIDC_PORT || 0), "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  handle = build(issuer);
  process.on("SIGHUP", () => {
    handle = build(issuer);
    console.log("rotated");
  });
  console.log(`ready ${issuer}`);
});
