// Mounts GraphiQL on the page app/http/graphiql.py serves. A file of our origin rather than
// an inline script, so that the page's Content-Security-Policy allows scripts from 'self' only.
// React, ReactDOM and GraphiQL are the globals of the UMD bundles the page loads before this.
"use strict";

(function () {
  var DEFAULT_QUERY = [
    "# propintel's GraphQL API. Run with Ctrl-Enter (or the play button);",
    "# Ctrl-Space completes. The Docs button lists every type and field.",
    "{",
    '  locality(name: "Erskineville", postcode: "2043") {',
    "    district",
    '    stats(from: "2024-01-01") { salesCount medianPrice p25Price p75Price }',
    "    properties(first: 5, orderBy: LAST_SALE_PRICE_DESC) {",
    "      nodes { address lastSalePrice }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");

  // GraphiQL's dialogs insert <style> elements (react-remove-scroll-bar), tagged with
  // `__webpack_nonce__` when it is set: the page's style nonce, which its CSP admits.
  var nonce = document.querySelector('meta[property="csp-nonce"]');
  if (nonce && nonce.nonce) {
    window.__webpack_nonce__ = nonce.nonce;
  }

  var container = document.getElementById("graphiql");
  // The page is served at the GraphQL endpoint itself (GET /graphql, Accept: text/html).
  var fetcher = GraphiQL.createFetcher({
    url: window.location.origin + window.location.pathname,
  });
  ReactDOM.createRoot(container).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false, // an Authorization header stays out of localStorage
    }),
  );
})();
