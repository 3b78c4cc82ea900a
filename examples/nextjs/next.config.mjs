/** @type {import('next').NextConfig} */
const nextConfig = {
  reactStrictMode: true,
  // The typed client is a local package (file:../../clients/typescript), built to plain ESM.
  transpilePackages: ["@todo-app/client"],
};

export default nextConfig;
