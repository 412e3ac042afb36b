// Starts GraphiQL against this server's /graphql endpoint.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var example = [
    "# Register a user. Try a weak password or a taken name to see every field error.",
    "mutation Register {",
    '  register(input: {username: "ada", email: "ada@example.com", password: "correct horse battery staple"}) {',
    "    id",
    "    username",
    "    email",
    "    dateJoined",
    "  }",
    "}",
    "",
    "query Policy {",
    "  passwordPolicy { minLength maxLength minStrength rules { code description } }",
    "}",
    "",
  ].join("\n");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: example }));
})();
