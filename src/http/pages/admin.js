// The admin page: a staff member signs in, finds users by a prefix, opens one, deactivates or
// reactivates them, ends their sessions, sends a reset link, and reads their audit trail. The
// session token lives in this page's memory only (never in storage, never in a cookie); every
// value from the server is set as text, never as HTML.
(function () {
  "use strict";
  var token = null;
  var current = null; // the open user's id
  var after = null; // the next page's cursor
  var $ = function (id) { return document.getElementById(id); };
  var status = $("status");

  function show(kind, text) {
    status.className = kind;
    status.textContent = text;
  }

  // Relative to the page, so roster behind a path prefix still reaches its own endpoint.
  function call(query, variables) {
    var headers = { "content-type": "application/json", accept: "application/graphql-response+json" };
    if (token) headers.authorization = "Bearer " + token;
    return fetch("graphql", {
      method: "POST",
      credentials: "omit",
      headers: headers,
      body: JSON.stringify({ query: query, variables: variables || {} }),
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (body.errors && body.errors.length) {
        var e = body.errors[0];
        var code = (e.extensions && e.extensions.code) || "ERROR";
        if (code === "UNAUTHENTICATED") signedOut();
        var fields = (e.extensions && e.extensions.fields) || [];
        var detail = fields.map(function (f) { return f.field + ": " + f.message; }).join("; ");
        throw new Error(code + ": " + (detail || e.message));
      }
      return body.data;
    });
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function signedOut() {
    token = null;
    current = null;
    $("signin-panel").hidden = false;
    $("search-panel").hidden = true;
    $("user-panel").hidden = true;
    $("signout").hidden = true;
    $("who").textContent = "";
  }

  // Signed in (both steps done): a user who is not staff is told so here, before anything.
  function enter(username) {
    return call("{ users(first: 1) { pageInfo { hasNextPage } } }").then(function () {
      $("who").textContent = username;
      $("signin-panel").hidden = true;
      $("second-step").hidden = true;
      $("signin").hidden = false;
      $("search-panel").hidden = false;
      $("signout").hidden = false;
      show("ok", "Signed in.");
    });
  }

  function refused(e) {
    if (token) call("mutation { logout }").catch(function () {});
    token = null;
    $("second-step").hidden = true;
    $("signin").hidden = false;
    show("error", e.message);
  }

  $("signin").addEventListener("submit", function (event) {
    event.preventDefault();
    $("signin-submit").disabled = true;
    call("mutation L($i: LoginInput!) { login(input: $i) { token mfaRequired user { username } } }",
      { i: { identifier: $("identifier").value, password: $("password").value } })
      .then(function (data) {
        token = data.login.token;
        $("password").value = "";
        if (data.login.mfaRequired) {
          // The password was right; the session waits for the second step.
          $("signin").hidden = true;
          $("second-step").hidden = false;
          $("code").focus();
          show("ok", "Enter the code from your authenticator app.");
          return null;
        }
        return enter(data.login.user.username);
      })
      .catch(refused)
      .finally(function () { $("signin-submit").disabled = false; });
  });

  $("second-step").addEventListener("submit", function (event) {
    event.preventDefault();
    $("code-submit").disabled = true;
    call("mutation V($c: String!) { verifySecondFactor(code: $c) { token user { username } } }",
      { c: $("code").value })
      .then(function (data) {
        // A new token: the one that knew only the password no longer works.
        token = data.verifySecondFactor.token;
        $("code").value = "";
        return enter(data.verifySecondFactor.user.username);
      })
      .catch(function (e) {
        // A wrong code may be retried (the server counts the attempts); anything else ends it.
        if (e.message.indexOf("BAD_USER_INPUT") === 0) {
          show("error", e.message);
        } else {
          refused(e);
        }
      })
      .finally(function () { $("code-submit").disabled = false; });
  });

  $("signout").addEventListener("click", function () {
    call("mutation { logout }").catch(function () {}).finally(function () {
      signedOut();
      show("ok", "Signed out.");
    });
  });

  var USERS = "query U($f: UserFilter, $after: String) { users(filter: $f, first: 20, after: $after) {" +
    " edges { node { id username email isActive isStaff } } pageInfo { hasNextPage endCursor } } }";

  function search(more) {
    var q = $("query").value.trim();
    var body = $("results").tBodies[0];
    if (!more) { body.textContent = ""; after = null; }
    call(USERS, { f: q ? { search: q } : {}, after: after }).then(function (data) {
      data.users.edges.forEach(function (edge) {
        var u = edge.node;
        var row = document.createElement("tr");
        cell(row, u.username);
        cell(row, u.email);
        cell(row, u.isActive ? "yes" : "no");
        cell(row, u.isStaff ? "yes" : "no");
        var open = document.createElement("button");
        open.type = "button";
        open.textContent = "Open";
        open.className = "open";
        open.addEventListener("click", function () { openUser(u.id); });
        cell(row, "").appendChild(open);
        body.appendChild(row);
      });
      after = data.users.pageInfo.endCursor;
      $("more").hidden = !data.users.pageInfo.hasNextPage;
      show("ok", body.rows.length + " user(s) shown.");
    }).catch(function (e) { show("error", e.message); });
  }
  $("search").addEventListener("submit", function (event) { event.preventDefault(); search(false); });
  $("more").addEventListener("click", function () { search(true); });

  var USER = "query O($id: ID!) { user(id: $id) { id username email isActive isStaff isSuperuser" +
    " emailVerified dateJoined lastLogin legacyId passwordFormat groups permissions" +
    " sessions { id createdAt lastSeenAt ip userAgent } } }";
  var AUDIT = "query A($u: ID) { auditLog(userId: $u, first: 50) { edges { node {" +
    " at action actorKind actorUserId actorApiKeyId ip } } } }";

  function openUser(id) {
    current = id;
    call(USER, { id: id }).then(function (data) {
      // Another user was opened meanwhile: the buttons act on that one, so show that one.
      if (id !== current) return;
      var u = data.user;
      if (!u) { show("error", "That user no longer exists."); return; }
      $("user-panel").hidden = false;
      $("user-name").textContent = u.username;
      var facts = $("user-facts");
      facts.textContent = "";
      [["Email", u.email || "(none)"], ["Active", u.isActive ? "yes" : "no"],
        ["Staff", u.isStaff ? "yes" : "no"], ["Superuser", u.isSuperuser ? "yes" : "no"],
        ["Email verified", u.emailVerified ? "yes" : "no"], ["Joined", u.dateJoined],
        ["Last login", u.lastLogin || "never"], ["Django id", u.legacyId || "-"],
        ["Password", u.passwordFormat], ["Groups", u.groups.join(", ") || "-"],
        ["Permissions", u.permissions.join(", ") || "-"]].forEach(function (pair) {
        var dt = document.createElement("dt");
        dt.textContent = pair[0];
        var dd = document.createElement("dd");
        dd.textContent = String(pair[1]);
        dd.setAttribute("data-fact", pair[0]);
        facts.appendChild(dt);
        facts.appendChild(dd);
      });
      $("deactivate").hidden = !u.isActive;
      $("reactivate").hidden = u.isActive;
      var sessions = $("user-sessions");
      sessions.textContent = "";
      u.sessions.forEach(function (s) {
        var li = document.createElement("li");
        li.textContent = s.createdAt + " from " + (s.ip || "?") + " (" + (s.userAgent || "unknown agent") + ")";
        sessions.appendChild(li);
      });
      if (!u.sessions.length) sessions.textContent = "none";
      return loadAudit(id);
    }).catch(function (e) { show("error", e.message); });
  }

  function loadAudit(id) {
    var body = $("audit").tBodies[0];
    body.textContent = "";
    return call(AUDIT, { u: id }).then(function (data) {
      data.auditLog.edges.forEach(function (edge) {
        var a = edge.node;
        var row = document.createElement("tr");
        cell(row, a.at);
        cell(row, a.action);
        cell(row, a.actorKind + (a.actorUserId ? " " + a.actorUserId : "") + (a.actorApiKeyId ? " " + a.actorApiKeyId : ""));
        cell(row, a.ip);
        body.appendChild(row);
      });
    }).catch(function (e) {
      // Without roster.view_auditlog the trail stays empty; the rest of the page works.
      cell(body.insertRow(), e.message);
    });
  }

  function act(button, query, done) {
    $(button).addEventListener("click", function () {
      if (!current) return;
      $(button).disabled = true;
      call(query, { id: current }).then(function (data) {
        show("ok", done(data));
        return openUser(current);
      }).catch(function (e) { show("error", e.message); })
        .finally(function () { $(button).disabled = false; });
    });
  }
  act("deactivate", "mutation D($id: ID!) { deactivateUser(id: $id) { isActive } }",
    function () { return "Deactivated: every session of theirs has ended."; });
  act("reactivate", "mutation R($id: ID!) { reactivateUser(id: $id) { isActive } }",
    function () { return "Reactivated."; });
  act("end-sessions", "mutation E($id: ID!) { endUserSessions(id: $id) }",
    function (data) { return data.endUserSessions + " session(s) ended."; });
  act("send-reset", "mutation S($id: ID!) { sendPasswordReset(id: $id) }",
    function () { return "A password-reset link is on its way to the user."; });
})();
