console.log("ecosystem app.js");
