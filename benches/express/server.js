// The reference handler the ingest benchmark compares hooklake against: the usual Express webhook endpoint.
// It reads the raw body, checks the InsightIQ signature and answers 200. It stores nothing, so its 200 means
// "signature checked", where hooklake's means "fsynced to the journal".
//
// Usage: node server.js [PORT]   (or PORT=… / WEBHOOK_SECRET=… in the environment; port 0 = any free port)
// Prints `express: listening on http://127.0.0.1:PORT/webhooks/insightiq` once it accepts connections.
'use strict';

const crypto = require('node:crypto');
const express = require('express');

const SECRET = process.env.WEBHOOK_SECRET || 'bench-secret';
const HOST = '127.0.0.1';
const PORT = Number(process.argv[2] ?? process.env.PORT ?? 0);
const PATH = '/webhooks/insightiq';

const app = express();
app.disable('x-powered-by');

// `Webhook-Signatures: <hex>,<hex>,…`: lowercase-hex HMAC-SHA256 of the raw body; any entry may match.
function signatureMatches(header, body) {
  if (!header) return false;
  const expected = crypto.createHmac('sha256', SECRET).update(body).digest();
  return header.split(',').some((entry) => {
    const given = Buffer.from(entry.trim(), 'hex');
    // timingSafeEqual throws on a length mismatch; a wrong length cannot match anyway.
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

app.post(PATH, express.raw({ type: 'application/json', limit: '1mb' }), (req, res) => {
  // express.raw leaves req.body as {} when the Content-Type did not match: verify an empty body then.
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!signatureMatches(req.get('Webhook-Signatures'), body)) {
    res.status(401).json({ error: 'invalid signature' });
    return;
  }
  res.status(200).json({ status: 'accepted' });
});

const server = app.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`express: listening on http://${HOST}:${port}${PATH}`);
});

// Exit promptly on SIGTERM (the bench script's cleanup); keep-alive connections would otherwise hold close().
process.on('SIGTERM', () => process.exit(0));
