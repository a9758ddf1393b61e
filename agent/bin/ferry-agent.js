#!/usr/bin/env node
// Thin launcher so npm can link the bin before the first build; the program lives in dist/.
import '../dist/main.js';
