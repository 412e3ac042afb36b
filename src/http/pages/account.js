// The pages that email links open. Nothing happens on load: the token is used only when
// the person presses the button (mail scanners prefetch links; a GET must not consume it).
(function () {
  "use strict";
  var token = new URLSearchParams(window.location.search).get("token") || "";
  var page = document.body.getAttribute("data-page");
  var form = document.getElementById("form");
  var submit = document.getElementById("submit");
  var status = document.getElementById("status");

  function show(kind, text, details) {
    status.className = kind;
    status.textContent = text;
    if (details && details.length) {
      var list = document.createElement("ul");
      details.forEach(function (d) {
        var item = document.createElement("li");
        item.textContent = d;
        list.appendChild(item);
      });
      status.appendChild(list);
    }
  }

  // Relative to the page, so roster behind a path prefix still reaches its own endpoint.
  function call(query, variables) {
    return fetch("graphql", {
      method: "POST",
      credentials: "omit",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json",
      },
      body: JSON.stringify({ query: query, variables: variables }),
    }).then(function (r) {
      return r.json();
    });
  }

  // The error's sentence, and each field error's message.
  function explain(body) {
    var error = (body.errors || [])[0] || {};
    var fields = (error.extensions && error.extensions.fields) || [];
    return {
      code: error.extensions && error.extensions.code,
      fields: fields,
      messages: fields.map(function (f) { return f.message; }),
      text: error.message || "Something went wrong; try again.",
    };
  }

  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) {
    submit.disabled = true;
    show("error", "This link is incomplete. Open the link from the email exactly as it was sent.");
    return;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var request;
    if (page === "verify-email") {
      request = call(
        "mutation VerifyEmail($token: String!) { verifyEmail(token: $token) { emailVerified } }",
        { token: token }
      );
    } else if (page === "change-email") {
      request = call(
        "mutation ConfirmEmailChange($token: String!) { confirmEmailChange(token: $token) { email } }",
        { token: token }
      );
    } else {
      var password = document.getElementById("password").value;
      if (password !== document.getElementById("confirm").value) {
        show("error", "The two passwords differ.");
        return;
      }
      request = call(
        "mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }",
        { input: { token: token, newPassword: password } }
      );
    }
    submit.disabled = true;
    show("", "Working…");
    request.then(function (body) {
      if (!body.errors) {
        form.hidden = true;
        show("ok", {
          "verify-email": "Your email address is confirmed. You can close this page.",
          "change-email": "This address is now your account's, and every session was signed out. Sign in again.",
          "reset-password": "Your password has been changed, and every session was signed out. Sign in with the new password.",
        }[page]);
        return;
      }
      var e = explain(body);
      var tokenError = e.fields.some(function (f) { return f.field === "token"; });
      if (tokenError) {
        form.hidden = true;
        show("error", e.messages.join(" "));
      } else if (e.fields.length) {
        submit.disabled = false;
        show("error", "Choose another password:", e.messages);
      } else {
        submit.disabled = false;
        show("error", e.text);
      }
    }, function () {
      submit.disabled = false;
      show("error", "The server could not be reached; try again.");
    });
  });
})();
